"""Tables of collections: placement rules and candidates, agency file formats, export files, agency reports."""
