"""gridwatch.embedded"""
