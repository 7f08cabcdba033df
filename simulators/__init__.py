"""The simulated Avala backend: world state, rules, clock, model and job engine. No HTTP here."""
