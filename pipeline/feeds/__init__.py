"""RSS/Atom: parsing, conditional polls, stored feed state and schedule, the pull into the frontier.

May import: pipeline.errors, pipeline.settings, pipeline.net, pipeline.normalise, pipeline.store.
"""
