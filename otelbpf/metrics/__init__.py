"""The metric data model (``model.py``): frozen points and metrics that every stage exchanges.

Aggregators build these objects, the export stage encodes or prints them; nothing here touches
the kernel or the network, so a data point can be built and checked in a test on its own.
"""
