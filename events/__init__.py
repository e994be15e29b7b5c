"""Toolkit for the new services: consuming the change events the gateway publishes."""
