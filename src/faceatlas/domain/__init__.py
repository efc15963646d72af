"""The pure ground floor: states and reasons, the error tree, names and identity keys, value
types. Nothing here touches a database, a file, the network or a model."""
