"""The data path's Python half: ports, packet batches and their ownership, configuration,
stats, the eventfd wake-ups and the numbered test frame. ``aioixy`` re-exports the public names.
"""
