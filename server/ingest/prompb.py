"""The Prometheus remote-write protobuf messages, from a small hand-kept descriptor.

Only the fields the receiver reads are declared (protobuf skips unknown fields, so
exemplars, native histograms and metadata in a request are parsed past, not errors).
Field numbers follow ``prompb/remote.proto`` + ``prompb/types.proto`` (remote-write
1.0, message ``prometheus.WriteRequest``) and ``prompb/io/prometheus/write/v2/types.proto``
(remote-write 2.0, message ``io.prometheus.write.v2.Request``). Decoding is done by the
protobuf library (upb); nothing here parses the wire format by hand.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_REP, _OPT = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL


def _msg(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> descriptor_pb2.DescriptorProto:
    m = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, ftype, label, type_name in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)  # type: ignore[arg-type]
        if type_name:
            f.type_name = type_name
    return m


def _v1() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="rca_prompb_v1.proto", package="prometheus", syntax="proto3")
    fd.message_type.extend([
        _msg("Label", [("name", 1, _F.TYPE_STRING, _OPT, None), ("value", 2, _F.TYPE_STRING, _OPT, None)]),
        _msg("Sample", [("value", 1, _F.TYPE_DOUBLE, _OPT, None), ("timestamp", 2, _F.TYPE_INT64, _OPT, None)]),
        _msg("TimeSeries", [("labels", 1, _F.TYPE_MESSAGE, _REP, ".prometheus.Label"),
                            ("samples", 2, _F.TYPE_MESSAGE, _REP, ".prometheus.Sample")]),
        _msg("WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, _REP, ".prometheus.TimeSeries")]),
    ])
    return fd


def _v2() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="rca_prompb_v2.proto", package="io.prometheus.write.v2",
                                            syntax="proto3")
    fd.message_type.extend([
        _msg("Sample", [("value", 1, _F.TYPE_DOUBLE, _OPT, None), ("timestamp", 2, _F.TYPE_INT64, _OPT, None)]),
        _msg("TimeSeries", [("labels_refs", 1, _F.TYPE_UINT32, _REP, None),
                            ("samples", 2, _F.TYPE_MESSAGE, _REP, ".io.prometheus.write.v2.Sample")]),
        _msg("Request", [("symbols", 4, _F.TYPE_STRING, _REP, None),
                         ("timeseries", 5, _F.TYPE_MESSAGE, _REP, ".io.prometheus.write.v2.TimeSeries")]),
    ])
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_v1())
_pool.Add(_v2())

WriteRequest: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.WriteRequest"))
TimeSeries: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.TimeSeries"))
WriteRequestV2: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("io.prometheus.write.v2.Request"))
