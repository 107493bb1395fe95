"""Ingestion pipeline as plain functions: register, decode, detect, crop, store, encode, upsert."""
