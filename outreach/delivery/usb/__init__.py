"""USB packs: export of village programs onto sticks, with playlists and 播放说明."""
