"""Authoring: script review and approval, and browser edits of campaigns and villages."""
