ln -sfn two link
