"""The demo's legacy monolith: a CRUD app for users and orders that knows nothing of events."""
