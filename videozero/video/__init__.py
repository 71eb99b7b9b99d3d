"""Video input: decoding with true timestamps, synthetic clips with known events."""
