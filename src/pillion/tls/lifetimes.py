"""How long dev CA certificates live, in days (without importing ``cryptography``)."""

CA_DAYS = 365
WORKLOAD_DAYS = 30  # short enough to exercise rotation, long enough for a dev setup
