"""HTTP/2 itself (RFC 9113) and HPACK (RFC 7541), without I/O and without HTTP's
message rules: frames in and out, header compression, stream states and
flow-control windows (``connection``), and what a connection reports
(``events``). The proxy's streams (``pillion.proxy.http2``,
``pillion.proxy.upstream_http2``) and the OTLP exporter's gRPC client build on
it; what a request's fields may say is ``pillion.http.h2fields``."""
