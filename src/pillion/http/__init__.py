"""HTTP/1.1 messages without I/O: strict parsing (httptools/llhttp underneath) and
serialisation. Bytes in, callbacks out; bytes out. Nothing here touches a socket.
"""
