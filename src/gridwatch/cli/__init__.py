"""gridwatch.cli"""
