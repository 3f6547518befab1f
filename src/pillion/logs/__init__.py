"""Log shipping: tail the app's files, deliver every line to every output, at least once."""
