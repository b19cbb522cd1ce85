"""SynthesisDetector servicer: proto <-> domain only; errors are mapped by the runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import synthesis_pb2, synthesis_pb2_grpc
from services.synthesis.engine import Detection


def to_proto(d: Detection) -> synthesis_pb2.DetectResponse:
    response = synthesis_pb2.DetectResponse(
        score=d.score,
        global_score=d.global_score,
        local_score=d.local_score,
        model_version=d.model_version,
        model_arch=d.model_arch,
        preprocessing=d.preprocessing,
        device=d.device,
        width=d.width,
        height=d.height,
        placeholder=d.placeholder,
        uncertain=d.uncertain,
        valid_patches=d.valid_patches,
        method=d.method,
    )
    if d.heatmap:
        response.heatmap.rows = len(d.heatmap)
        response.heatmap.cols = len(d.heatmap[0])
        response.heatmap.scores.extend(s for row in d.heatmap for s in row)
        response.heatmap.tile_size = d.tile_size
        response.heatmap.stride = d.heatmap_stride
        response.heatmap.origin_x, response.heatmap.origin_y = d.heatmap_origin
    return response


class SynthesisServicer(synthesis_pb2_grpc.SynthesisDetectorServicer):
    def __init__(self, engine) -> None:
        self.engine = engine

    async def Detect(self, request: synthesis_pb2.DetectRequest, context: aio.ServicerContext):
        detection = await self.engine.detect(request.image.data, request.want_heatmap, context.time_remaining())
        return to_proto(detection)
