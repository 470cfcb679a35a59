"""Property-based tests: whatever a caller or a producer sends, the answer is a 2xx or the contract's 4xx."""
