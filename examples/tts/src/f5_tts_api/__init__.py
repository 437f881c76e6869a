"""Example text-to-speech API package (a stand-in for the real service)."""

VERSION = "0.1.0"
