"""gridwatch_devtools"""
