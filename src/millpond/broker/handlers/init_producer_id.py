"""InitProducerId (API 22): a fresh producer id for an idempotent producer.

Without a transactional id Kafka always hands out a new id with epoch 0; v3+ may name the
producer's current id and epoch (KIP-360), which must then be both set or both -1. Transactions
are not offered, so a transactional id is refused.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.producer_ids import ProducerIdFileError


async def handle_init_producer_id(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    response: dict[str, Any] = {
        "throttle_time": datetime.timedelta(0),
        "error_code": ErrorCode.none,
        "producer_id": -1,
        "producer_epoch": -1,
    }
    current_id = getattr(request, "producer_id", -1)
    current_epoch = getattr(request, "producer_epoch", -1)
    if request.transactional_id is not None:
        response["error_code"] = ErrorCode.transactional_id_authorization_failed
    elif (current_id == -1) != (current_epoch == -1):
        response["error_code"] = ErrorCode.invalid_request
    else:
        try:
            response["producer_id"] = ctx.producer_ids.allocate()
            response["producer_epoch"] = 0
        except (ProducerIdFileError, OSError):
            response["error_code"] = ErrorCode.kafka_storage_error
    return build(response_type(header.api_key, header.api_version), response)
