"""loyalwallet: self-hosted loyalty cards for Apple Wallet, Google Wallet and the web."""

__version__ = "0.1.0"
