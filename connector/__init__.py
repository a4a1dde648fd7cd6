"""edxml-connector: the agency-side connector to Vietnam's national document exchange axis."""

__version__ = "0.1.0"
