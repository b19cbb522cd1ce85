"""CheckStream (chat images) and CheckBatch (back-fills) through the gateway."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from imagetrust.client import AsyncClient, Client, build_request
from imagetrust.v1 import gateway_pb2
from tests.helpers.metrics import metric_value

BAD = {"empty": b"", "text": b"hello, not an image at all"}


def mixed_requests(jpegs: list[bytes], n: int) -> list[gateway_pb2.CheckRequest]:
    """n requests with client_ref = index; every third one is a bad image."""
    requests = []
    for i in range(n):
        if i % 3 == 1:
            data = BAD["empty"] if i % 2 else BAD["text"]
        else:
            data = jpegs[i % len(jpegs)]
        requests.append(build_request(data, client_ref=str(i)))
    return requests


def assert_in_order_with_item_errors(requests, responses) -> None:
    assert [r.client_ref for r in responses] == [q.client_ref for q in requests]
    for request, response in zip(requests, responses):
        if request.image.data in BAD.values():
            assert response.HasField("error")
            assert response.error.code_name == "INVALID_ARGUMENT" and response.error.code == 3
            assert response.error.message
        else:
            assert not response.HasField("error")
            assert response.decision != 0 and response.HasField("metadata")


def test_stream_answers_in_order_and_bad_images_do_not_end_it(gateway_module, jpegs):
    requests = mixed_requests(jpegs, 12)
    labels = {"grpc_service": "imagetrust.v1.ImageTrust", "grpc_method": "CheckStream", "grpc_type": "bidi_stream"}

    def messages(name: str) -> float:
        return metric_value(gateway_module.metrics_url, name, **labels) or 0.0

    received, sent = messages("grpc_server_msg_received_total"), messages("grpc_server_msg_sent_total")
    with Client(gateway_module.address) as client:
        responses = list(client.check_stream(requests, timeout=60))
    assert len(responses) == 12
    # go-grpc-prometheus's stream counters: every image in, every verdict out.
    assert messages("grpc_server_msg_received_total") - received == 12
    assert messages("grpc_server_msg_sent_total") - sent == 12
    assert_in_order_with_item_errors(requests, responses)
    ids = [r.request_id for r in responses]
    assert len(set(ids)) == 12  # each image its own id, derived from the call's
    assert len({i.rsplit(".", 1)[0] for i in ids}) == 1


def test_stream_checks_several_images_at_once_within_its_window(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    # Slow synthesis whose answers arrive in a different order than asked is not possible
    # here; instead it records how many calls overlap.
    slow = scripted(delay_s=0.2, score=0.1)
    gateway = server_factory("gateway", synthesis_addr=slow.address, metadata_addr=metadata.address, stream_window=3)
    requests = [build_request(jpeg, client_ref=str(i)) for i in range(9)]
    with Client(gateway.address) as client:
        responses = list(client.check_stream(requests, timeout=60))
    assert [r.client_ref for r in responses] == [str(i) for i in range(9)]
    assert not any(r.degraded for r in responses)
    assert slow.max_in_flight == 3  # concurrent, and never more than the window


def test_stream_from_the_async_client_with_a_generator(gateway_module, jpegs):
    async def requests():
        for i in range(5):
            await asyncio.sleep(0.01)  # images arrive over time, as in a chat
            yield build_request(jpegs[i % len(jpegs)] if i != 2 else b"", client_ref=f"chat-{i}")

    async def run():
        async with AsyncClient(gateway_module.address) as client:
            return [r async for r in client.check_stream(requests(), timeout=60)]

    responses = asyncio.run(run())
    assert [r.client_ref for r in responses] == [f"chat-{i}" for i in range(5)]
    assert [r.HasField("error") for r in responses] == [False, False, True, False, False]


def test_batch_in_order_with_per_item_errors(gateway_module, jpegs):
    requests = mixed_requests(jpegs, 10)
    with Client(gateway_module.address) as client:
        responses = client.check_batch(requests, timeout=60)
    assert len(responses) == 10
    assert_in_order_with_item_errors(requests, responses)


def test_batch_concurrency_is_bounded(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    slow = scripted(delay_s=0.1, score=0.1)
    gateway = server_factory(
        "gateway", synthesis_addr=slow.address, metadata_addr=metadata.address, batch_concurrency=4
    )
    with Client(gateway.address) as client:
        responses = client.check_batch([build_request(jpeg, client_ref=str(i)) for i in range(12)], timeout=60)
    assert [r.client_ref for r in responses] == [str(i) for i in range(12)]
    assert slow.max_in_flight == 4


def test_batch_over_the_limit_is_refused_with_a_clear_message(server_factory, backends_module, jpeg):
    metadata, synthesis = backends_module
    gateway = server_factory(
        "gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address, batch_max_items=3
    )
    with Client(gateway.address) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check_batch([build_request(jpeg)] * 4)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "batch has 4 images; the limit is 3 per call" in info.value.details()
        assert len(client.check_batch([build_request(jpeg)] * 3)) == 3


def test_batch_items_past_the_deadline_are_item_errors(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    slow = scripted(delay_s=0.3, score=0.1)
    gateway = server_factory(
        "gateway", synthesis_addr=slow.address, metadata_addr=metadata.address, batch_concurrency=1
    )
    with Client(gateway.address) as client:
        responses = client.check_batch([build_request(jpeg, client_ref=str(i)) for i in range(6)], timeout=1.0)
    assert [r.client_ref for r in responses] == [str(i) for i in range(6)]
    # The first images are checked; once the call's deadline is spent the rest say so.
    assert not responses[0].HasField("error")
    late = [r for r in responses if r.HasField("error")]
    assert late and all(r.error.code_name == "DEADLINE_EXCEEDED" for r in late)


def test_async_batch(gateway_module, jpeg):
    async def run():
        async with AsyncClient(gateway_module.address) as client:
            return await client.check_batch([build_request(jpeg, client_ref="a"), build_request(b"", client_ref="b")])

    first, second = asyncio.run(run())
    assert first.client_ref == "a" and not first.HasField("error")
    assert second.client_ref == "b" and second.error.code_name == "INVALID_ARGUMENT"
