"""Graph passes: pure functions from graphs (or nodes) to graphs.

Owns autodiff (the VJP rule table) and, later, simplification, fusion,
scheduling and memory planning. Depends on ir/ only.
"""
