ln -sfn two d/l
