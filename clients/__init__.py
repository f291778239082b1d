"""Examples of programs outside the service that read its topics."""
