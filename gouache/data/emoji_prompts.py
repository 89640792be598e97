"""Prompts in the shipped emoji model's vocabulary: what a run's sample grid paints and what a
LoRA run's prior preservation asks the base for, unless its recipe names its own
(``sample_prompts``, ``lora_prior_prompts``)."""

__all__ = ["DEFAULT_SAMPLE_PROMPTS", "PRIOR_PROMPTS"]

# The ten showcase prompts (README, examples/showcase.py)
DEFAULT_SAMPLE_PROMPTS = ("red apple", "watermelon", "banana", "grinning face", "cat face",
                          "rocket", "pizza", "sun", "red heart", "christmas tree")
# What the base paints for a LoRA run's prior preservation (prior.py) unless a recipe says:
# 32 names from the shipped emoji model's training captions, none of them a showcase prompt above
PRIOR_PROMPTS = ("dog face", "tiger face", "strawberry", "grapes", "cherries", "hamburger", "bicycle",
                 "automobile", "house", "star", "crescent moon", "cloud", "umbrella", "snowman", "ghost",
                 "smiling face with sunglasses", "thumbs up", "soccer ball", "light bulb", "bell", "wrapped gift",
                 "trophy", "books", "fire", "rainbow", "four leaf clover", "sunflower", "butterfly", "fish",
                 "frog", "penguin", "mushroom")
