"""Who acts and what they may see: identities and roles (identity.py), API keys without the
database (keys.py), masking of residents' contacts (privacy.py)."""
