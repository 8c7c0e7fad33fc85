echo one > one && echo two > two && ln -s one link && mkdir d && ln -s ../one d/l
