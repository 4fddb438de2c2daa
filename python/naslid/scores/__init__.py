"""Training-free architecture scores (zero-cost proxies such as synflow and NASWOT) on freshly
initialised networks, to compare the supernet's ranking against (``proxies``)."""
