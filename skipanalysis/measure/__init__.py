"""Measuring tools shared by the studies: FLOPs (``flops``), saved activation memory (``memory``),
time in interleaved rounds (``timing``), probes of a net's insides (``probes``), how far attention
reaches (``attention``), how near a net's blocks are to the identity (``identity``), and hardware
files (``machines``)."""
