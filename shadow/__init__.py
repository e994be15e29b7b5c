"""Shadow traffic: mirroring sampled requests and comparing the responses."""
