"""Decode stage: raw map keys and record fields → label values, through decoder chains."""
