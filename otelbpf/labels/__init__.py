"""Label stage: raw map keys and record fields → label values, through decoder chains (the
decoders themselves live in otelbpf.decoders, one per module)."""
