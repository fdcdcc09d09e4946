"""r_keeper 7 through FarCards' HTTP protocol: loyalwallet as the card server."""
