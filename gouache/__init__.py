"""gouache: text-to-image diffusion you train on your own captioned pictures."""
