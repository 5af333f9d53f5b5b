"""The app's screens, one module per area; dialogs are modal screens beside them."""
