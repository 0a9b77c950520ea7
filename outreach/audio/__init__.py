"""Audio: clips rendered from scripts, horn-speaker mastering, program assembly, ffmpeg, proof of air."""
