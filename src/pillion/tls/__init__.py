"""TLS without the network: certificates (a dev CA), peer identities, and SSL
contexts built from files, reloadable. The proxy does the handshakes."""

from pillion.tls.contexts import ClientTls, ServerTls, TlsLoadError
from pillion.tls.identity import peer_identity

__all__ = ["ClientTls", "ServerTls", "TlsLoadError", "peer_identity"]
