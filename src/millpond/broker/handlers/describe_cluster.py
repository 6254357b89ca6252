"""DescribeCluster (API 60): the cluster id, the controller and the one broker."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

from .metadata import AUTHORIZED_OPERATIONS_UNKNOWN

BROKERS_ENDPOINT = 1


async def handle_describe_cluster(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    endpoint_type = getattr(request, "endpoint_type", BROKERS_ENDPOINT)
    response: dict[str, Any] = {
        "throttle_time": datetime.timedelta(0),
        "error_code": ErrorCode.none,
        "error_message": None,
        "endpoint_type": endpoint_type,
        "cluster_id": ctx.logs.cluster_id,
        "controller_id": ctx.node_id,
        "brokers": [
            {
                "broker_id": ctx.node_id,
                "host": ctx.advertised_host,
                "port": ctx.advertised_port,
                "rack": None,
            }
        ],
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_UNKNOWN,
    }
    if endpoint_type != BROKERS_ENDPOINT:
        response["error_code"] = ErrorCode.unsupported_endpoint_type
        response["error_message"] = "this broker serves only the brokers endpoint"
        response["brokers"] = ()
    return build(response_type(header.api_key, header.api_version), response)
