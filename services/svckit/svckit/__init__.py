"""Thin kit shared by the services: settings base, logging, errors, wire models."""
