"""The files of an exported folder: nbprune.export copies them and fills in the model's constants. Torch only."""
