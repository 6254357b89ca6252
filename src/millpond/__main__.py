from millpond.cli.main import main

main()
