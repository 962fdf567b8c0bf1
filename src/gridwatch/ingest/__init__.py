"""gridwatch.ingest"""
