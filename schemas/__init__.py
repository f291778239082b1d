"""The contract every process and downstream consumer shares: records, topics and error codes."""
