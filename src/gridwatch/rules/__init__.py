"""gridwatch.rules"""
