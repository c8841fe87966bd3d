"""The demo's local sample news site: stories written for the project, served on 127.0.0.1."""

from crawler.samplesite.server import SampleSite

__all__ = ["SampleSite"]
