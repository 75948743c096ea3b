"""Upstream adapters. Each knows its upstream and the canonical model, nothing about surfaces."""
