"""A real OTLP/gRPC trace receiver for the end-to-end tests.

It serves `opentelemetry.proto.collector.trace.v1.TraceService/Export`
(grpcio + opentelemetry-proto, pinned in requirements.txt) on a loopback
port and prints one JSON object per span it receives on stdout, flushed at
once; the first line is `{"port": N}`, the port it listens on.

    python receiver.py [PORT]        # 0 or nothing: any free port

Each span line holds the span's trace and span ids (lowercase hex), its
name and kind, its start and end (ns) and its attributes with their OTLP
types kept (`{"string": "..."}`, `{"int": N}`, `{"double": X}`,
`{"bool": B}`), and the service.name of its resource.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()


def value_of(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return {"string": v.string_value}
    if kind == "int_value":
        return {"int": v.int_value}
    if kind == "double_value":
        return {"double": v.double_value}
    if kind == "bool_value":
        return {"bool": v.bool_value}
    return {kind or "none": str(v)}


def emit(obj):
    with LOCK:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        for rs in request.resource_spans:
            service = next(
                (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
                None,
            )
            for ss in rs.scope_spans:
                for span in ss.spans:
                    emit(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": span.kind,
                            "start_ns": span.start_time_unix_nano,
                            "end_ns": span.end_time_unix_nano,
                            "service": service,
                            "attributes": {a.key: value_of(a.value) for a in span.attributes},
                        }
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if bound == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    server.start()
    emit({"port": bound})
    # Stop when the test closes our stdin (or kills us).
    sys.stdin.read()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
