"""Reference data: reading, validation and neighbour graphs."""
