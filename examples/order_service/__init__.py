"""The new order service: builds its read model from the monolith's order events."""
