"""The processor: a pure presence core and the faust-streaming adapters that drive it."""
