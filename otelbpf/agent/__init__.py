"""The agent: wires kernel readers, decoders, aggregation and export together per program,
isolates failures per program, and runs the flush loop, reloads and shutdown."""
